"""dealscore: calibrated win probabilities for B2B deals from CRM history."""

__version__ = "0.1.0"
