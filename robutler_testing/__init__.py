"""Offline test harness for robutler servers and agents."""
