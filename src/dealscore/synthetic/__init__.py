"""A realistic synthetic CRM generator: the generative story is in docs/synthetic.md."""

from dealscore.synthetic.generator import (
    DEFAULT_EXPORT_DATE,
    GeneratorSettings,
    SyntheticCrm,
    generate_crm,
)

__all__ = ["DEFAULT_EXPORT_DATE", "GeneratorSettings", "SyntheticCrm", "generate_crm"]
