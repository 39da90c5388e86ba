"""The ML side: fine-tuning, evaluation, scoring. Importable without Django.

torch and transformers are imported inside functions so importing this package is cheap.
"""
