//! The post transforms onnxruntime applies to a row's aggregated scores.

use super::Post;

pub(super) fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `sqrt(2) * erfinv(2x - 1)` in single precision, with the
/// approximation of the inverse error function onnxruntime uses (Winitzki,
/// a = 0.147), so scores agree with it. NaN outside (0, 1), as there.
fn probit(x: f64) -> f64 {
    let x = 2.0 * x as f32 - 1.0;
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let v2 = 1.0 / 0.147f32 * ln;
    let erfinv = sign * (-v + (v * v - v2).sqrt()).sqrt();
    f64::from(std::f32::consts::SQRT_2 * erfinv)
}

pub(super) fn post_vector(post: Post, v: &mut [f64]) {
    match post {
        Post::None => {}
        Post::Probit => v.iter_mut().for_each(|x| *x = probit(*x)),
        Post::Logistic => v.iter_mut().for_each(|x| *x = logistic(*x)),
        Post::Softmax => {
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().map(|x| (x - max).exp()).sum();
            v.iter_mut().for_each(|x| *x = (*x - max).exp() / sum);
        }
        Post::SoftmaxZero => {
            let max = v
                .iter()
                .copied()
                .filter(|&x| x != 0.0)
                .fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().filter(|&&x| x != 0.0).map(|x| (x - max).exp()).sum();
            v.iter_mut().for_each(|x| {
                if *x != 0.0 {
                    *x = (*x - max).exp() / sum;
                }
            });
        }
    }
}
