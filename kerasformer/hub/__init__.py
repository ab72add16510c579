"""Named checkpoints, Hugging Face Hub downloads and Keras presets."""
from kerasformer.hub.download import IntegrityError, resolve_revision
from kerasformer.hub.manifests import find_manifest, list_manifests
from kerasformer.hub.presets import save_preset
