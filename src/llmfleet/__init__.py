"""llmfleet: SGLang Llama 4 on AMD Instinct hosts, deployed, benchmarked and archived over SSH."""

__version__ = "0.1.0"
