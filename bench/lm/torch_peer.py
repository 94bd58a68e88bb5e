"""PyTorch peer for `npm run bench:lm` and `npm run bench:kernels`: the same measurements as cprec's
LM bench, with Hugging Face transformers + peft on the same base model.

Two kinds of base:
  --gguf FILE             a GGUF file (SmolLM2-135M), de-quantised to float32 by transformers on load;
  --checkpoint FILE.bin   a llama2.c legacy checkpoint (stories260K) converted here into
                          LlamaForCausalLM (--tokenizer tok512.bin only decodes ids for printing).

Run by bench/lm/lm.bench.ts (and bench/kernels/kernels.bench.ts, training only) when
CPREC_TORCH_PYTHON names a Python that has the packages:
    python3 -m venv /work/.venv-torch
    /work/.venv-torch/bin/pip install torch transformers gguf peft
    CPREC_TORCH_PYTHON=/work/.venv-torch/bin/python npm run bench:lm -- --model smollm2
Never a dependency of the product or its tests. Prints one JSON object on stdout (the last line).

--inputs FILE.json (written by lm.bench.ts) fixes the ranking prompt and candidates, the generation
prompt and a conversion check: {"prompt": [...], "candidates": [[...], ...], "generate_prompt": [...],
"check": {"prompt": [...], "expect": [...]}}. The check greedily continues check.prompt for
len(check.expect) tokens (full recompute, no cache) and exits with status 3 when the ids differ from
cprec's; both continuations are printed either way.
"""

import argparse
import json
import os
import resource
import struct
import sys
import time

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def load_llama2c(path: str):
    """llama2.c legacy v0 checkpoint -> transformers LlamaForCausalLM (float32).

    Layout (run.c read_checkpoint): 7 int32 header dim, hidden_dim, n_layers, n_heads, n_kv_heads,
    vocab_size (negative: separate classifier), seq_len; then float32 token_embedding, rms_att, wq,
    wk, wv, wo, rms_ffn, w1, w2, w3 (each stacked over layers, [out, in] rows), rms_final,
    freq_cis_real, freq_cis_imag, [wcls]. llama2.c rotates interleaved pairs (2i, 2i+1); HF's
    rotate_half pairs (i, i + head_dim/2), so wq/wk rows are permuted as llama2.c's HF export does.
    """
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab_raw, seq_len = struct.unpack("<7i", raw[:28])
    vocab, tied = abs(vocab_raw), vocab_raw > 0
    hs = dim // n_heads
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > data.size:
            raise SystemExit(f"{path}: truncated llama2.c checkpoint")
        t = torch.from_numpy(data[off : off + n].copy()).reshape(shape)
        off += n
        return t

    emb = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, n_kv * hs, dim)
    wv = take(n_layers, n_kv * hs, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    off += seq_len * hs  # freq_cis_real + freq_cis_imag (seq_len * hs/2 each): RoPE is recomputed
    wcls = None if tied else take(vocab, dim)

    def to_hf(w, heads):
        # interleaved (llama2.c) -> split-half (HF) rows within each head
        return w.reshape(heads, hs // 2, 2, dim).transpose(1, 2).reshape(heads * hs, dim)

    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=dim,
        intermediate_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        head_dim=hs,
        max_position_embeddings=seq_len,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=tied,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype=torch.float32,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    sd = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    for l in range(n_layers):
        p = f"model.layers.{l}."
        sd[p + "input_layernorm.weight"] = rms_att[l]
        sd[p + "self_attn.q_proj.weight"] = to_hf(wq[l], n_heads)
        sd[p + "self_attn.k_proj.weight"] = to_hf(wk[l], n_kv)
        sd[p + "self_attn.v_proj.weight"] = wv[l]
        sd[p + "self_attn.o_proj.weight"] = wo[l]
        sd[p + "post_attention_layernorm.weight"] = rms_ffn[l]
        sd[p + "mlp.gate_proj.weight"] = w1[l]
        sd[p + "mlp.down_proj.weight"] = w2[l]
        sd[p + "mlp.up_proj.weight"] = w3[l]
    sd["lm_head.weight"] = emb if tied else wcls
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (tied and k == "lm_head.weight") and "rotary_emb" not in k]
    if missing or unexpected:
        raise SystemExit(f"llama2.c -> HF conversion: missing {missing}, unexpected {unexpected}")
    if tied:
        model.tie_weights()
    model.eval()
    return model


def llama2c_decoder(tok_path: str, vocab: int):
    """ids -> text with a llama2.c tokenizer.bin (run.c decode: byte pieces, no space after BOS)."""
    pieces = []
    with open(tok_path, "rb") as f:
        f.read(4)  # max_token_length
        for _ in range(vocab):
            _score, n = struct.unpack("<fi", f.read(8))
            pieces.append(f.read(n))

    def decode(ids, prev=1):
        out = b""
        for i in ids:
            if i in (0, 1, 2):  # <unk>, BOS, EOS
                prev = i
                continue
            p = pieces[i]
            if prev == 1 and p.startswith(b" "):
                p = p[1:]
            if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
                p = bytes([int(p[3:5], 16)])
            out += p
            prev = i
        return out.decode("utf-8", errors="replace")

    return decode


def main() -> None:
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf")
    src.add_argument("--checkpoint", help="llama2.c legacy .bin")
    ap.add_argument("--tokenizer", help="llama2.c tokenizer.bin (for printing the conversion check)")
    ap.add_argument("--inputs", help="JSON with prompt, candidates, generate_prompt, check")
    ap.add_argument("--measure", default="rank,generate,train", help="comma list of rank, generate, train")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--answer-tokens", type=int, default=0, help="also time an answer-only loss on the last N tokens")
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--prompt-tokens", type=int, default=280)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--candidate-tokens", type=int, default=8)
    ap.add_argument("--generate-tokens", type=int, default=32)
    ap.add_argument("--profile-train", action="store_true", help="print torch.profiler's table for one step")
    a = ap.parse_args()
    measure = set(a.measure.split(","))

    import torch
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if a.gguf:
        from transformers import AutoModelForCausalLM

        folder, name = os.path.split(os.path.abspath(a.gguf))
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
        low = 100  # random ids from the ordinary vocabulary, above the special tokens
    else:
        model = load_llama2c(a.checkpoint)
        low = 3
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, loaded in {load_s:.1f} s")
    inputs = {}
    if a.inputs:
        with open(a.inputs) as f:
            inputs = json.load(f)

    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
    }

    check = inputs.get("check")
    if check:
        with torch.inference_mode():
            ids = list(check["prompt"])
            got = []
            for _ in range(len(check["expect"])):
                nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
                got.append(nxt)
                ids.append(nxt)
        decode = llama2c_decoder(a.tokenizer, vocab) if a.tokenizer else None
        same = got == list(check["expect"])
        log(f"conversion check: greedy continuation of {len(check['prompt'])} prompt tokens")
        log(f"  cprec ids: {check['expect']}")
        log(f"  torch ids: {got}")
        if decode:
            log(f"  cprec: {decode(check['prompt']) + decode(check['expect'], check['prompt'][-1])!r}")
            log(f"  torch: {decode(check['prompt']) + decode(got, check['prompt'][-1])!r}")
        if not same:
            first = next(i for i, (x, y) in enumerate(zip(got, check["expect"])) if x != y)
            log(f"CONVERSION CHECK FAILED: torch's greedy continuation differs from cprec's at token {first}")
            sys.exit(3)
        log("  identical")
        result["conversion_check"] = {"tokens": len(got), "identical": True}

    g = torch.Generator().manual_seed(1)
    if "prompt" in inputs:
        prompt = torch.tensor([inputs["prompt"]])
        cand_rows = inputs["candidates"]
    else:
        prompt = torch.randint(low, vocab, (1, a.prompt_tokens), generator=g)
        cand_rows = torch.randint(low, vocab, (a.candidates, a.candidate_tokens), generator=g).tolist()
    # Candidates of different lengths are right-padded: causal attention keeps padding out of the
    # real tokens' logits, and the mask keeps it out of the sums.
    width = max(len(c) for c in cand_rows)
    cands = torch.tensor([c + [0] * (width - len(c)) for c in cand_rows])
    cmask = torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c in cand_rows])

    if "rank" in measure:
        # Ranking: one prefill of the prompt, then all candidates in one batch reading its cache
        # (the prompt's keys/values expanded to the candidates' batch), log-probabilities summed.
        def rank() -> torch.Tensor:
            with torch.inference_mode():
                out = model(prompt, use_cache=True)
                past = out.past_key_values
                first = torch.log_softmax(out.logits[0, -1], -1)
                past.batch_repeat_interleave(len(cand_rows))
                logits = model(cands, past_key_values=past, use_cache=False).logits
                lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, cands[:, 1:, None]).squeeze(-1)
                return first[cands[:, 0]] + (lp * cmask[:, 1:]).sum(-1)

        rank()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            rank()
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        result["ranking_ms"] = round(times[len(times) // 2], 1)
        result["ranking_prompt_tokens"] = prompt.shape[1]
        log(f"ranking {len(cand_rows)} candidates: {result['ranking_ms']:.1f} ms (median of 5)")

    if "generate" in measure:
        # Greedy with the KV cache.
        with torch.inference_mode():
            ids = torch.tensor([inputs["generate_prompt"]]) if "generate_prompt" in inputs else prompt[:, :32]
            model.generate(ids, max_new_tokens=4, do_sample=False)
            t = time.perf_counter()
            out = model.generate(
                ids, max_new_tokens=a.generate_tokens, min_new_tokens=a.generate_tokens, do_sample=False
            )
            gen_tps = (out.shape[1] - ids.shape[1]) / (time.perf_counter() - t)
        result["generate_tokens_per_s"] = round(gen_tps, 1)
        log(f"generation: {gen_tps:.1f} tokens/s")

    if "train" in measure:
        # LoRA r=8 on every projection (cprec's default targets), AdamW, full causal-LM loss.
        lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=a.lora_dropout, target_modules=LORA_TARGETS)
        peft_model = get_peft_model(model, lcfg)
        peft_model.train()
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0)
        batch = torch.randint(low, vocab, (a.batch, a.seq), generator=g)

        def step(labels) -> None:
            opt.zero_grad(set_to_none=True)
            loss = peft_model(input_ids=batch, labels=labels).loss
            loss.backward()
            opt.step()

        def rate(labels) -> float:
            step(labels)  # warm-up
            t = time.perf_counter()
            for _ in range(a.train_steps):
                step(labels)
            return a.train_steps * a.batch * a.seq / (time.perf_counter() - t)

        train_tps = rate(batch)
        result["train_tokens_per_s"] = round(train_tps, 1)
        log(f"training {a.batch} x {a.seq}, full loss: {train_tps:.1f} tokens/s")
        if a.answer_tokens > 0:
            labels = batch.clone()
            labels[:, : a.seq - a.answer_tokens] = -100
            ans = rate(labels)
            result["train_tokens_per_s_answer_only"] = round(ans, 1)
            log(f"training, loss on the last {a.answer_tokens} tokens: {ans:.1f} tokens/s")
        if a.profile_train:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(batch)
            log(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        result.update(batch=a.batch, seq=a.seq, train_steps_timed=a.train_steps, lora_dropout=a.lora_dropout)

    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
