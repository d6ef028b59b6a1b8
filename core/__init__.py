"""Shared infrastructure: settings, errors, events, logging, time and JSON helpers."""

VERSION = "1.0.0"
