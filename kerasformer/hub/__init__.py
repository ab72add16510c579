"""Named checkpoints (manifests) and verified Hugging Face Hub downloads."""
from kerasformer.hub.download import (CacheRepairWarning, HubUnreachableError, IntegrityError,
                                      resolve_revision)
from kerasformer.hub.manifests import find_manifest, list_manifests
