"""CRM Insights core: the whole domain in plain Python (never imports streamlit)."""

__version__ = "0.1.0"
