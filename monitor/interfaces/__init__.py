"""The ways people and programs reach svarstid (the web pages and their API)."""
