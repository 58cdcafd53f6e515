"""Tests that run the programs as local processes (no Docker)."""
