"""Section 5, training and fine-tuning: pre-training loss and a live tiny run, SFT, RLHF, GRPO, DPO."""

from fwdtui.chapters.training import dpo, grpo, pretraining, rlhf, sft  # noqa: F401  (importing registers each chapter)
