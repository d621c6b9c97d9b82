"""hf-compact: Compact Transformers (CCT) and ViTok in the Hugging Face stack.

Importing this package registers the CCT family with transformers' ``Auto*`` classes and makes the
diffusers components (``AutoencoderViTok``, ``DiTTransformer3DModel``, pipelines) loadable with
``DiffusionPipeline.from_pretrained``.
"""

__version__ = "0.1.0"

# Each block below belongs to one part of the package; add your exports inside your own block only.
# --- cct ---
# --- text_cct ---
# --- vitok ---
# --- dit ---
# --- metrics ---
