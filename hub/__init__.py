"""The safeguarding hub: police and councils' children's services sharing what they know, on time."""

__version__ = "0.1.0"
