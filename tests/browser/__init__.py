"""Helpers that drive JupyterLab in Chromium for tests/test_browser.py."""
