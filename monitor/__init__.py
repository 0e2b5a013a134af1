"""svarstid: a contact-centre response monitor."""

__version__ = "0.1.0"
