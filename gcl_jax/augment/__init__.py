"""Graph augmentations with static shapes: pure ``(key, graph) -> graph`` functions (or
``-> (graph, keep)`` where nodes are dropped), host-side diffusion and GCA probabilities,
GraphMAE masking, and combinators."""

from gcl_jax.augment.adaptive import CENTRALITIES, gca_edge_weights, gca_feature_weights, node_centrality
from gcl_jax.augment.basic import (
    add_edges,
    drop_edges,
    drop_edges_mask_features,
    drop_nodes,
    dropout_features,
    graph_keys,
    graph_uniforms,
    identity,
    keep_nodes,
    mask_features,
    node_offsets,
    shuffle_nodes,
    subgraph_random_walk,
)
from gcl_jax.augment.combinators import compose, random_choice, views
from gcl_jax.augment.communal import (
    communal_attribute_weights,
    communal_edge_weights,
    community_strength,
    detect_communities,
)
from gcl_jax.augment.diffusions import clear_cache, diffusion, heat, ppr
from gcl_jax.augment.masking import dropout_by_slot, mask_nodes, mask_nodes_by_slot, pick_lowest, remask

__all__ = [
    "CENTRALITIES",
    "add_edges",
    "clear_cache",
    "communal_attribute_weights",
    "communal_edge_weights",
    "community_strength",
    "compose",
    "detect_communities",
    "diffusion",
    "drop_edges",
    "drop_edges_mask_features",
    "drop_nodes",
    "dropout_by_slot",
    "dropout_features",
    "gca_edge_weights",
    "gca_feature_weights",
    "graph_keys",
    "graph_uniforms",
    "heat",
    "identity",
    "keep_nodes",
    "mask_features",
    "mask_nodes",
    "mask_nodes_by_slot",
    "node_centrality",
    "node_offsets",
    "pick_lowest",
    "ppr",
    "random_choice",
    "remask",
    "shuffle_nodes",
    "subgraph_random_walk",
    "views",
]
