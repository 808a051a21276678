"""A realistic synthetic CRM generator: the generative story is in docs/synthetic.md."""

from dealscore.synthetic.generator import GeneratorSettings, SyntheticCrm, generate_crm

__all__ = ["GeneratorSettings", "SyntheticCrm", "generate_crm"]
