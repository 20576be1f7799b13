// moe_tile.glsl: the column tile of a grouped matmul_id workgroup (matmul.comp, matvec.comp with
// MATMUL_ID GROUPED), read from moe_group.comp's groups[] (binding 3). Workgroup z is a global
// tile number: expert e owns tiles [tile_start[e], tile_start[e + 1]), so experts without pairs
// own none and only the host's worst-case slack (z >= the number of tiles) finds no work.
// Needs pc.off[3], pc.n_expert and a readonly buffer groups[].
uint g_expert;  // the tile's expert
uint g_first;   // index in groups[] of the tile's first pair
uint g_cols;    // pairs in the tile (1..tile)

bool moe_tile(uint tile_size) {
    uint z = gl_WorkGroupID.z, E = pc.n_expert, g = pc.off[3];
    if (z >= uint(groups[g + 3u * E])) return false;
    // The last expert whose first tile is <= z: it owns z (an expert with no tiles shares its
    // tile_start with the next one, so it is never the last such expert).
    uint lo = 0u, hi = E;
    while (hi - lo > 1u) {
        uint mid = (lo + hi) / 2u;
        if (uint(groups[g + 2u * E + mid]) <= z) lo = mid;
        else hi = mid;
    }
    uint j = (z - uint(groups[g + 2u * E + lo])) * tile_size;
    g_expert = lo;
    g_first = g + 3u * E + 1u + uint(groups[g + E + lo]) + j;
    g_cols = min(tile_size, uint(groups[g + lo]) - j);
    return true;
}
