//! Where the shell's text goes: standard output and standard error, each line written and
//! flushed at once (so the two streams keep their order when merged into one pipe, as
//! zkCli's do), or, for a watch event that arrives while the line editor waits for input,
//! through the editor's printer so that the prompt is redrawn below it.

use std::io::Write;

use rustyline::ExternalPrinter;

/// The shell's output streams.
#[derive(Default)]
pub struct Output {
    /// The line editor's printer, when standard input is a terminal.
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    /// Whether the line editor is reading a line now.
    editing: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("printer", &self.printer.is_some())
            .field("editing", &self.editing)
            .finish()
    }
}

impl Output {
    /// Plain standard output and standard error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `printer` for text printed while the line editor reads a line.
    pub fn set_printer(&mut self, printer: Box<dyn ExternalPrinter + Send>) {
        self.printer = Some(printer);
    }

    /// Marks whether the line editor is reading a line now.
    pub fn set_editing(&mut self, editing: bool) {
        self.editing = editing;
    }

    /// Prints `line` and a newline on standard output.
    pub fn out(&mut self, line: &str) {
        self.write_out(&format!("{line}\n"));
    }

    /// Prints `text` on standard output, without a newline.
    pub fn out_raw(&mut self, text: &str) {
        self.write_out(text);
    }

    /// Prints `line` and a newline on standard error.
    pub fn err(&mut self, line: &str) {
        let mut e = std::io::stderr().lock();
        // A closed stream is not the shell's problem: keep going, as Java does.
        let _ = e.write_all(format!("{line}\n").as_bytes());
        let _ = e.flush();
    }

    /// Prints a watch event as zkCli's default watcher does: a blank line, `WATCHER::`,
    /// a blank line, then the event.
    pub fn event(&mut self, event_line: &str) {
        self.write_out(&format!("\nWATCHER::\n\n{event_line}\n"));
    }

    fn write_out(&mut self, text: &str) {
        if self.editing {
            if let Some(printer) = &mut self.printer {
                if printer.print(text.to_owned()).is_ok() {
                    return;
                }
            }
        }
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}
