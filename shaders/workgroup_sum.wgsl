// Shared by the standardization kernels (a part appended to their source): the sum of one value
// per thread over a 256-thread workgroup, returned to every thread. Every thread of the
// workgroup must call it, in uniform control flow (it holds barriers).

const THREADS: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn reduce(local: u32, value: f32) -> f32 {
    partial[local] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            partial[local] = partial[local] + partial[local + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
