"""CPU-only helpers of `benchmarks/cct_throughput.py`, kept out of the package: an opt-in attention kernel for
transformers' `AttentionInterface` and a glibc allocator setting."""
