"""Subscribers and deliveries: import, list, remove, export, unsubscribe, deliveries."""

from __future__ import annotations
