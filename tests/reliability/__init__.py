"""The reliability and security suite (marker ``reliability``); see RELIABILITY.md."""
