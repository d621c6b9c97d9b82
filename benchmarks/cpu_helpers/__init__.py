"""Helpers of the benchmarks, kept out of the package: for `cct_throughput.py` an opt-in CPU attention kernel for
transformers' `AttentionInterface` and a glibc allocator setting; for the digits benchmarks a quiet `Trainer` run."""
