//! The Moré–Thuente line search of MINPACK-2 (`dcsrch`, `dcstep`), as L-BFGS-B (and so SciPy and
//! scikit-learn) runs it: a step satisfying the strong Wolfe conditions, found by safeguarded cubic
//! and quadratic interpolation.

/// What the search asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Evaluate the function and its directional derivative at `stp`.
    Fg,
    /// The strong Wolfe conditions hold at `stp`.
    Convergence,
    /// The search cannot make progress (rounding, interval too small, step at a bound).
    Warning,
}

/// The state `dcsrch` keeps between calls.
#[derive(Debug, Clone)]
pub struct Search {
    gtol: f64,
    xtol: f64,
    stpmin: f64,
    stpmax: f64,
    brackt: bool,
    stage: u8,
    ginit: f64,
    gtest: f64,
    gx: f64,
    gy: f64,
    finit: f64,
    fx: f64,
    fy: f64,
    stx: f64,
    sty: f64,
    stmin: f64,
    stmax: f64,
    width: f64,
    width1: f64,
}

const XTRAPL: f64 = 1.1;
const XTRAPU: f64 = 4.0;

impl Search {
    /// Starts a search from `f`, `g` (the directional derivative, negative) at step 0, trying `stp`
    /// first. Returns the search and the first step to evaluate.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        f: f64,
        g: f64,
        stp: f64,
        ftol: f64,
        gtol: f64,
        xtol: f64,
        stpmin: f64,
        stpmax: f64,
    ) -> (Search, f64) {
        let s = Search {
            gtol,
            xtol,
            stpmin,
            stpmax,
            brackt: false,
            stage: 1,
            ginit: g,
            gtest: ftol * g,
            gx: g,
            gy: g,
            finit: f,
            fx: f,
            fy: f,
            stx: 0.0,
            sty: 0.0,
            stmin: 0.0,
            stmax: stp + XTRAPU * stp,
            width: stpmax - stpmin,
            width1: (stpmax - stpmin) / 0.5,
        };
        (s, stp)
    }

    /// Given `f` and `g` at `stp`, returns what to do and the next step.
    pub fn step(&mut self, f: f64, g: f64, stp: f64) -> (Task, f64) {
        let ftest = self.finit + stp * self.gtest;
        if self.stage == 1 && f <= ftest && g >= 0.0 {
            self.stage = 2;
        }
        if self.brackt && (stp <= self.stmin || stp >= self.stmax) {
            return (Task::Warning, stp);
        }
        if self.brackt && self.stmax - self.stmin <= self.xtol * self.stmax {
            return (Task::Warning, stp);
        }
        if stp == self.stpmax && f <= ftest && g <= self.gtest {
            return (Task::Warning, stp);
        }
        if stp == self.stpmin && (f > ftest || g >= self.gtest) {
            return (Task::Warning, stp);
        }
        if f <= ftest && g.abs() <= self.gtol * (-self.ginit) {
            return (Task::Convergence, stp);
        }
        let mut stp = stp;
        if self.stage == 1 && f <= self.fx && f > ftest {
            // The modified function ψ(α) = f(α) − f(0) − ftol·α·f'(0) until the sufficient
            // decrease holds with a nonnegative derivative.
            let fm = f - stp * self.gtest;
            let mut fxm = self.fx - self.stx * self.gtest;
            let mut fym = self.fy - self.sty * self.gtest;
            let gm = g - self.gtest;
            let mut gxm = self.gx - self.gtest;
            let mut gym = self.gy - self.gtest;
            dcstep(
                &mut self.stx,
                &mut fxm,
                &mut gxm,
                &mut self.sty,
                &mut fym,
                &mut gym,
                &mut stp,
                fm,
                gm,
                &mut self.brackt,
                self.stmin,
                self.stmax,
            );
            self.fx = fxm + self.stx * self.gtest;
            self.fy = fym + self.sty * self.gtest;
            self.gx = gxm + self.gtest;
            self.gy = gym + self.gtest;
        } else {
            dcstep(
                &mut self.stx,
                &mut self.fx,
                &mut self.gx,
                &mut self.sty,
                &mut self.fy,
                &mut self.gy,
                &mut stp,
                f,
                g,
                &mut self.brackt,
                self.stmin,
                self.stmax,
            );
        }
        if self.brackt {
            if (self.sty - self.stx).abs() >= 0.66 * self.width1 {
                stp = self.stx + 0.5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
        }
        if self.brackt {
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = stp + XTRAPL * (stp - self.stx);
            self.stmax = stp + XTRAPU * (stp - self.stx);
        }
        stp = stp.max(self.stpmin).min(self.stpmax);
        if self.brackt
            && (stp <= self.stmin
                || stp >= self.stmax
                || self.stmax - self.stmin <= self.xtol * self.stmax)
        {
            stp = self.stx;
        }
        (Task::Fg, stp)
    }
}

/// One safeguarded step of the interval of uncertainty `[stx, sty]` (MINPACK-2 `dcstep`).
#[allow(clippy::too_many_arguments)]
fn dcstep(
    stx: &mut f64,
    fx: &mut f64,
    dx: &mut f64,
    sty: &mut f64,
    fy: &mut f64,
    dy: &mut f64,
    stp: &mut f64,
    fp: f64,
    dp: f64,
    brackt: &mut bool,
    stpmin: f64,
    stpmax: f64,
) {
    let sgnd = dp * (*dx / dx.abs());
    let stpf;
    if fp > *fx {
        // A higher function value: the minimum is bracketed.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp < *stx {
            gamma = -gamma;
        }
        let p = (gamma - *dx) + theta;
        let q = ((gamma - *dx) + gamma) + dp;
        let r = p / q;
        let stpc = *stx + r * (*stp - *stx);
        let stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = if (stpc - *stx).abs() < (stpq - *stx).abs() {
            stpc
        } else {
            stpc + (stpq - stpc) / 2.0
        };
        *brackt = true;
    } else if sgnd < 0.0 {
        // Derivatives of opposite sign: the minimum is bracketed.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + *dx;
        let r = p / q;
        let stpc = *stp + r * (*stx - *stp);
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = if (stpc - *stp).abs() > (stpq - *stp).abs() {
            stpc
        } else {
            stpq
        };
        *brackt = true;
    } else if dp.abs() < dx.abs() {
        // Same sign, the derivative's magnitude decreases.
        let theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * 0f64.max((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if *stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = (gamma + (*dx - dp)) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            *stp + r * (*stx - *stp)
        } else if *stp > *stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if *brackt {
            let mut f = if (stpc - *stp).abs() < (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            f = if *stp > *stx {
                f.min(*stp + 0.66 * (*sty - *stp))
            } else {
                f.max(*stp + 0.66 * (*sty - *stp))
            };
            stpf = f;
        } else {
            let f = if (stpc - *stp).abs() > (stpq - *stp).abs() {
                stpc
            } else {
                stpq
            };
            stpf = f.min(stpmax).max(stpmin);
        }
    } else {
        // Same sign, the derivative's magnitude does not decrease.
        if *brackt {
            let theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            let s = theta.abs().max(dy.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (*dy / s) * (dp / s)).sqrt();
            if *stp > *sty {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + *dy;
            let r = p / q;
            stpf = *stp + r * (*sty - *stp);
        } else if *stp > *stx {
            stpf = stpmax;
        } else {
            stpf = stpmin;
        }
    }
    // Update the interval.
    if fp > *fx {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if sgnd < 0.0 {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}
