"""InternVL fine-tuning: baseline and tuned captions, full SFT and LoRA, memory planner, format guard."""
