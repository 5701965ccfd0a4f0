"""Custom actions of the handoff example, served by rasa_sdk."""
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher


class ActionPauseConversation(Action):
    """Tells the user a human takes over, then pauses the bot."""

    def name(self) -> Text:
        return "action_pause_conversation"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_handoff")
        return [ConversationPaused()]


class ActionResumeConversation(Action):
    """Run as the followup after an agent resumes the conversation."""

    def name(self) -> Text:
        return "action_resume_conversation"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
            domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_resumed")
        return []
