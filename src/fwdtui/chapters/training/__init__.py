"""Section 5, training and fine-tuning: pre-training loss and a live tiny run, SFT, RLHF, GRPO, DPO, the recipe."""

from fwdtui.chapters.training import base_to_assistant, dpo, grpo, pretraining, rlhf, sft  # noqa: F401  (importing registers each chapter)
