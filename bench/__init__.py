"""The benchmark: crm_core at scale against a plain-pandas baseline (`python -m bench`)."""
