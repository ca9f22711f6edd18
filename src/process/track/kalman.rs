//! The motion model of a track: a constant-velocity Kalman filter on the box's centre, width
//! and height, in continuous time (detections come when the model has finished, not on every
//! frame, so every step says how long it lasts).
//!
//! ByteTrack's filter (and SORT's before it) keeps an 8-value state whose matrices never couple
//! one coordinate with another: the transition links each position only with its own velocity,
//! the measurement reads positions only, and every noise is diagonal. Its covariance therefore
//! stays four independent 2x2 blocks, and the filter is exactly four scalar-position filters
//! ([`Axis`]), which is what is written here: no matrix library, no inversion.
//!
//! Noise follows the object's size, as in ByteTrack: a position's uncertainty is 1/20 of the
//! box's extent along its axis, a velocity's 1/160 of it per reference frame (1/25 s), scaled
//! with the time that passed.

/// A reference frame interval: the noise weights below are per this much time.
const FRAME_S: f64 = 0.04;
/// Position noise, as a fraction of the box's extent.
const W_POS: f64 = 1.0 / 20.0;
/// Velocity noise per reference frame, as a fraction of the box's extent.
const W_VEL: f64 = 1.0 / 160.0;

/// One coordinate: its value, its rate of change (per second) and their 2x2 covariance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    /// The value (pixels).
    pub pos: f64,
    /// Its rate (pixels per second).
    pub vel: f64,
    p00: f64,
    p01: f64,
    p11: f64,
}

impl Axis {
    /// A coordinate measured once at `pos` on an object of size `extent`: still, with a wide
    /// velocity uncertainty.
    fn new(pos: f64, extent: f64) -> Self {
        let sp = 2.0 * W_POS * extent;
        let sv = 10.0 * W_VEL * extent / FRAME_S;
        Self {
            pos,
            vel: 0.0,
            p00: sp * sp,
            p01: 0.0,
            p11: sv * sv,
        }
    }

    /// Moves the estimate `dt` seconds on.
    fn predict(&mut self, dt: f64, extent: f64) {
        let k = dt / FRAME_S;
        let qp = (W_POS * extent).powi(2) * k;
        let qv = (W_VEL * extent / FRAME_S).powi(2) * k;
        self.pos += self.vel * dt;
        // P = F P F' + Q with F = [[1, dt], [0, 1]].
        let p00 = self.p00 + 2.0 * dt * self.p01 + dt * dt * self.p11 + qp;
        let p01 = self.p01 + dt * self.p11;
        self.p00 = p00;
        self.p01 = p01;
        self.p11 += qv;
    }

    /// Takes a measurement `z` of the position with variance `r`.
    fn update(&mut self, z: f64, r: f64) {
        let s = self.p00 + r;
        if s <= 0.0 || !s.is_finite() {
            return;
        }
        let (k0, k1) = (self.p00 / s, self.p01 / s);
        let innovation = z - self.pos;
        self.pos += k0 * innovation;
        self.vel += k1 * innovation;
        let (p00, p01, p11) = (self.p00, self.p01, self.p11);
        self.p00 = (1.0 - k0) * p00;
        self.p01 = (1.0 - k0) * p01;
        self.p11 = p11 - k1 * p01;
    }
}

/// A box `[cx, cy, w, h]` in pixels.
pub type Cxcywh = [f64; 4];

/// The filtered box of one object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxFilter {
    axes: [Axis; 4],
}

impl BoxFilter {
    /// A filter started from one measured box.
    pub fn new(b: Cxcywh) -> Self {
        let (w, h) = (b[2].max(1.0), b[3].max(1.0));
        Self {
            axes: [
                Axis::new(b[0], w),
                Axis::new(b[1], h),
                Axis::new(w, w),
                Axis::new(h, h),
            ],
        }
    }

    fn extents(&self) -> (f64, f64) {
        (self.axes[2].pos.max(1.0), self.axes[3].pos.max(1.0))
    }

    /// Moves the box `dt` seconds on (nothing for `dt <= 0`).
    pub fn predict(&mut self, dt: f64) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let (w, h) = self.extents();
        for (axis, extent) in self.axes.iter_mut().zip([w, h, w, h]) {
            axis.predict(dt, extent);
        }
        // A box never shrinks below a pixel, whatever its size's velocity says.
        for i in 2..4 {
            if self.axes[i].pos < 1.0 {
                self.axes[i].pos = 1.0;
                self.axes[i].vel = self.axes[i].vel.max(0.0);
            }
        }
    }

    /// Corrects the box with a measured one.
    pub fn update(&mut self, b: Cxcywh) {
        let (w, h) = (b[2].max(1.0), b[3].max(1.0));
        for (i, (axis, extent)) in self.axes.iter_mut().zip([w, h, w, h]).enumerate() {
            axis.update(
                if i < 2 { b[i] } else { b[i].max(1.0) },
                (W_POS * extent).powi(2),
            );
        }
    }

    /// The box now.
    pub fn state(&self) -> Cxcywh {
        [
            self.axes[0].pos,
            self.axes[1].pos,
            self.axes[2].pos.max(1.0),
            self.axes[3].pos.max(1.0),
        ]
    }

    /// The box `dt` seconds from now, without changing the filter.
    pub fn ahead(&self, dt: f64) -> Cxcywh {
        let mut f = *self;
        f.predict(dt);
        f.state()
    }

    /// How far a measured centre `[cx, cy]` lies from the predicted one, in standard
    /// deviations of the prediction and of a measurement, squared and summed over both axes
    /// (the squared Mahalanobis distance: chi-squared with two degrees of freedom).
    pub fn centre_distance2(&self, c: [f64; 2]) -> f64 {
        let (w, h) = self.extents();
        [(0, w), (1, h)]
            .into_iter()
            .map(|(i, extent)| {
                let a = &self.axes[i];
                let s = a.p00 + (W_POS * extent).powi(2);
                (c[i] - a.pos).powi(2) / s.max(1e-9)
            })
            .sum()
    }

    /// The centre's velocity, pixels per second.
    pub fn velocity(&self) -> [f64; 2] {
        [self.axes[0].vel, self.axes[1].vel]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_centre_s_distance_is_in_standard_deviations_and_widens_with_time_unseen() {
        let mut f = BoxFilter::new([100.0, 100.0, 40.0, 100.0]);
        for i in 1..10 {
            f.predict(0.04);
            f.update([100.0 + 4.0 * f64::from(i), 100.0, 40.0, 100.0]);
        }
        // Where it is going: near; half a body below: beyond the gate.
        let next = [140.0, 100.0];
        f.predict(0.04);
        assert!(
            f.centre_distance2(next) < 2.0,
            "{}",
            f.centre_distance2(next)
        );
        let below = [140.0, 150.0];
        assert!(
            f.centre_distance2(below) > 20.0,
            "{}",
            f.centre_distance2(below)
        );
        // Unseen for a second, the same jump is less unlikely.
        let near = f.centre_distance2(below);
        f.predict(1.0);
        assert!(f.centre_distance2([f.state()[0], 150.0]) < near);
    }

    use super::*;

    #[test]
    fn learns_a_constant_velocity_from_measurements_at_uneven_times() {
        // An object moving 100 px/s right and 20 px/s down, measured at irregular instants
        // (the detector's pace) with a pixel of noise.
        let at = |t: f64| [100.0 + 100.0 * t, 200.0 + 20.0 * t, 40.0, 80.0];
        let mut f = BoxFilter::new(at(0.0));
        let mut t = 0.0;
        for (i, dt) in [0.04, 0.12, 0.08, 0.2, 0.04, 0.16, 0.12, 0.08, 0.2, 0.12]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            t += dt;
            f.predict(*dt);
            let noise = if i % 2 == 0 { 1.0 } else { -1.0 };
            let mut z = at(t);
            z[0] += noise;
            z[1] -= noise;
            f.update(z);
        }
        let [vx, vy] = f.velocity();
        assert!((vx - 100.0).abs() < 5.0, "vx {vx}");
        assert!((vy - 20.0).abs() < 5.0, "vy {vy}");
        // Predicted half a second on, the box is where the object will be.
        let ahead = f.ahead(0.5);
        let truth = at(t + 0.5);
        assert!((ahead[0] - truth[0]).abs() < 4.0, "{ahead:?} vs {truth:?}");
        assert!((ahead[1] - truth[1]).abs() < 4.0, "{ahead:?} vs {truth:?}");
        assert!((ahead[2] - 40.0).abs() < 1.0 && (ahead[3] - 80.0).abs() < 1.0);
    }

    #[test]
    fn a_box_never_shrinks_below_a_pixel_and_bad_steps_change_nothing() {
        let mut f = BoxFilter::new([10.0, 10.0, 4.0, 4.0]);
        f.update([10.0, 10.0, 2.0, 2.0]);
        f.update([10.0, 10.0, 0.5, 0.5]);
        f.predict(30.0);
        let s = f.state();
        assert!(s[2] >= 1.0 && s[3] >= 1.0, "{s:?}");
        let before = f;
        f.predict(f64::NAN);
        f.predict(-1.0);
        assert_eq!(f, before);
    }
}
