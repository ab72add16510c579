"""Named checkpoints (manifests) and verified Hugging Face Hub downloads."""
from kerasformer.hub.download import IntegrityError, resolve_revision
from kerasformer.hub.manifests import find_manifest, list_manifests
