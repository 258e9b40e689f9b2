"""netdash: a full-screen terminal dashboard of what a Linux server's network stack is doing."""

__version__ = "0.1.0"
