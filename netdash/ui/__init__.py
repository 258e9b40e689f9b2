"""The Textual application. Only this package imports Textual."""
