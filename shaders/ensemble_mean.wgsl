// Ensemble mean: the element-wise mean of K equal contiguous blocks of `x` (K members' outputs
// written side by side: a [K, ...] tensor, or the K channel views of a [1, K * C, H, W] one), in
// member order, summed in f32.

// `act` is the activation storage type: f32, or f16 in the f16 precision variant (see
// plan::Precision), always computed in f32.
alias act = f32;

struct Params {
    members: u32,
    /// Elements per member (and of the output).
    block: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let index = gid.x + gid.y * groups.x * 64u;
    if (index >= p.block) {
        return;
    }
    var sum = 0.0;
    for (var k = 0u; k < p.members; k++) {
        sum += f32(x[k * p.block + index]);
    }
    y[index] = act(sum / f32(p.members));
}
