/// Winograd F(2x2, 3x3) filter transform U = G g G^T of one 3x3 filter, row-major 4x4.
pub fn winograd_filter(g: &[f32]) -> [f32; 16] {
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut gg = [[0.0f32; 3]; 4];
    for (r, row) in G.iter().enumerate() {
        for c in 0..3 {
            gg[r][c] = (0..3).map(|k| row[k] * g[k * 3 + c]).sum();
        }
    }
    let mut u = [0.0f32; 16];
    for r in 0..4 {
        for c in 0..4 {
            u[r * 4 + c] = (0..3).map(|k| gg[r][k] * G[c][k]).sum();
        }
    }
    u
}
