use crate::events::Event;
pub struct StoryInput<'a> {
    pub name: String,
    pub events: Vec<&'a Event>,
}
pub fn export_stories(_stories: &[StoryInput<'_>]) -> String {
    String::new()
}
