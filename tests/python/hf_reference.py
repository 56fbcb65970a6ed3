"""transformers as the reference for kiln's LLM tests (test_llama.py,
test_llm_families.py): random-weight models made to show a skipped or
doubled norm or bias, and their logits and greedy tokens."""
import torch


def unsettle_norms_and_biases(model):
    """Norm weights (q_norm and k_norm included) and biases away from their
    constant init (1 and 0), so that one skipped or applied twice shows."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif n.endswith(".bias"):
                p.uniform_(-0.1, 0.1)
    return model


def reference_logits(hf, ids):
    with torch.no_grad():
        return hf(ids).logits


def reference_generate(hf, ids, n):
    with torch.no_grad():
        return hf.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0,
                           attention_mask=torch.ones_like(ids))
