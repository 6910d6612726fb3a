"""Loss functions of embeddings for graph contrastive / self-supervised learning.

Pure functions of JAX arrays (imports jax, numpy and the mesh reductions of :mod:`gcl_jax.parallel`).

N x N losses (``info_nce``, ``nt_xent``, ``clip``, ``siglip``,
``debiased_info_nce``, ``hard_info_nce``, ``multi_similarity``) share the
keywords

* ``block_size``: ``None`` -> dense reference; ``int`` -> blockwise streaming
  reductions with a custom VJP that recomputes tiles (O(N d + block^2) memory);
  ``tile_size`` turns a config's ``block_size`` (0, a side, or ``"auto"``) into this;
* ``axis_name``: ``None`` -> one device; a mesh axis name -> called inside
  ``jax.shard_map`` with rows sharded; negatives travel around a ring of
  ``ppermute`` steps (``collective='ring'``) or are all-gathered
  (``collective='all_gather'``); every device returns the global loss;
* ``valid``: optional ``(N,)`` boolean row mask (the local shard under
  ``axis_name``): padding rows are neither anchors nor negatives.

O(N) / O(N d^2) losses (``jsd``, ``local_global_jsd``, ``triplet_margin``,
``barlow_twins``, ``vicreg``, ``cca_ssg``, ``bootstrap``,
``scaled_cosine_error``, ``swav``) take ``valid`` and ``axis_name`` (batch
statistics are psum-ed).

``multi_positive_info_nce`` (HeCo's cross-view loss with a positive-pair matrix) is dense only.
"""
from .clustering import sinkhorn, swav
from .community import (community_assignments, community_centroids, dense_community_aggregation,
                        reweighted_cross_contrast)
from .influence import (dec_kl, dec_target, influence_contrastive, influence_partition, influence_positives,
                        meta_node_contrastive, meta_nodes, student_t_assignments)
from .contrastive import clip, debiased_info_nce, hard_info_nce, info_nce, nt_xent, siglip
from .metric import multi_similarity, triplet_margin
from .multi_positive import multi_positive_info_nce
from .mutual_info import jsd, local_global_jsd
from .predictive import bootstrap, scaled_cosine_error
from .redundancy import barlow_twins, cca_ssg, vicreg
from ._tiling import tile_size
from .weighted_negatives import cluster_negative_weights, prototype_concentration, prototypical_nce, weighted_info_nce

__all__ = [
    "info_nce", "nt_xent", "clip", "siglip", "debiased_info_nce", "hard_info_nce",
    "multi_similarity", "triplet_margin", "jsd", "local_global_jsd",
    "barlow_twins", "vicreg", "cca_ssg", "bootstrap", "scaled_cosine_error",
    "swav", "sinkhorn", "multi_positive_info_nce",
    "influence_contrastive", "influence_partition", "influence_positives", "meta_node_contrastive",
    "meta_nodes", "student_t_assignments", "dec_target", "dec_kl",
    "weighted_info_nce", "cluster_negative_weights", "prototype_concentration", "prototypical_nce",
    "community_assignments", "community_centroids", "dense_community_aggregation", "reweighted_cross_contrast",
    "tile_size",
]
