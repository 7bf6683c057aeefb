"""The safeguarding hub: police and councils' children's services sharing what they know."""

__version__ = "0.1.0"
