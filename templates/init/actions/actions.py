# Custom actions live here, written with rasa_sdk exactly as for Rasa.
# List an action under `actions:` in domain.yml, uncomment `action_endpoint` in
# endpoints.yml, and run the action server:
#   python -m rasa_sdk --actions actions
#
# from typing import Any, Dict, List, Text
#
# from rasa_sdk import Action, Tracker
# from rasa_sdk.executor import CollectingDispatcher
#
#
# class ActionHelloWorld(Action):
#     def name(self) -> Text:
#         return "action_hello_world"
#
#     def run(
#         self,
#         dispatcher: CollectingDispatcher,
#         tracker: Tracker,
#         domain: Dict[Text, Any],
#     ) -> List[Dict[Text, Any]]:
#         dispatcher.utter_message(text="Hello World!")
#         return []
