"""PyTorch peer for `npm run bench:lm -- --model smollm2`: the same measurements as cprec's LM bench,
with Hugging Face transformers + peft on the same GGUF file (de-quantised to float32 on load).

Run by bench/lm/lm.bench.ts when CPREC_TORCH_PYTHON names a Python that has the packages:
    python3 -m venv /work/.venv-torch
    /work/.venv-torch/bin/pip install torch transformers gguf peft
    CPREC_TORCH_PYTHON=/work/.venv-torch/bin/python npm run bench:lm -- --model smollm2
Never a dependency of the product or its tests. Prints one JSON object on stdout.
"""

import argparse
import json
import os
import resource
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=280)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--candidate-tokens", type=int, default=8)
    ap.add_argument("--generate-tokens", type=int, default=32)
    a = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.abspath(a.gguf))
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    log = lambda s: print(s, file=sys.stderr, flush=True)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, loaded in {load_s:.1f} s")

    # Ranking: one prefill of the prompt, then all candidates in one batch reading its cache
    # (the prompt's keys/values expanded to the candidates' batch), log-probabilities summed.
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(100, vocab, (1, a.prompt_tokens), generator=g)
    cands = torch.randint(100, vocab, (a.candidates, a.candidate_tokens), generator=g)

    def rank() -> torch.Tensor:
        with torch.inference_mode():
            out = model(prompt, use_cache=True)
            past = out.past_key_values
            first = torch.log_softmax(out.logits[0, -1], -1)
            # Expand the cache to the candidate batch (a view; the attention reads it).
            past.batch_repeat_interleave(a.candidates)
            logits = model(cands, past_key_values=past, use_cache=False).logits
            lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, cands[:, 1:, None]).squeeze(-1)
            return first[cands[:, 0]] + lp.sum(-1)

    rank()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        rank()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    ranking_ms = times[len(times) // 2]
    log(f"ranking: {ranking_ms:.0f} ms (median of 5)")

    # Generation: greedy with the KV cache.
    with torch.inference_mode():
        ids = prompt[:, :32]
        model.generate(ids, max_new_tokens=4, do_sample=False)
        t = time.perf_counter()
        out = model.generate(ids, max_new_tokens=a.generate_tokens, min_new_tokens=a.generate_tokens, do_sample=False)
        gen_tps = (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t)
    log(f"generation: {gen_tps:.1f} tokens/s")

    # LoRA r=8 on every projection, full causal-LM loss over the whole sequence.
    lcfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    peft_model = get_peft_model(model, lcfg)
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0)
    batch = torch.randint(100, vocab, (a.batch, a.seq), generator=g)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = peft_model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(a.train_steps):
        step()
    train_tps = a.train_steps * a.batch * a.seq / (time.perf_counter() - t)
    log(f"training: {train_tps:.1f} tokens/s")

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "load_s": round(load_s, 2),
                "train_tokens_per_s": round(train_tps, 1),
                "ranking_ms": round(ranking_ms, 1),
                "generate_tokens_per_s": round(gen_tps, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
