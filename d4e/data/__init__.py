"""Preprocessing cache: tracked, cropped, audio-aligned clips (see docs/CONVENTIONS.md)."""
