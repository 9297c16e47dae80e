//! ANSI colors of compact and dict output, and escaping of terminal control
//! characters found in flow data.

use std::io::IsTerminal;

/// Foreground colors Hubble uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Red = 31,
    Green = 32,
    Yellow = 33,
    Magenta = 35,
    Cyan = 36,
}

/// Paints text when colors are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    /// `--color auto|always|never`. `auto` colors when standard output is a
    /// terminal, `NO_COLOR` is unset or empty and `TERM` is not `dumb`.
    pub fn from_flag(when: &str) -> Painter {
        let enabled = match when {
            "always" => true,
            "never" => false,
            _ => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Painter { enabled }
    }

    pub fn paint(self, color: Color, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{}m{text}\x1b[0m", color as u8)
        } else {
            text.to_owned()
        }
    }
}

/// Makes untrusted text safe to print on a terminal: ESC becomes `^[` and
/// carriage return becomes `\r`, so flow data cannot move the cursor or
/// change colors.
pub fn clean(text: &str) -> String {
    if !text.contains(['\x1b', '\r']) {
        return text.to_owned();
    }
    text.replace('\x1b', "^[").replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_enabled() {
        assert_eq!(
            Painter { enabled: true }.paint(Color::Red, "DROPPED"),
            "\x1b[31mDROPPED\x1b[0m"
        );
        assert_eq!(
            Painter { enabled: false }.paint(Color::Red, "DROPPED"),
            "DROPPED"
        );
        assert_eq!(Painter::from_flag("never"), Painter { enabled: false });
        assert_eq!(Painter::from_flag("always"), Painter { enabled: true });
    }

    #[test]
    fn escapes_control_sequences() {
        assert_eq!(clean("pod\x1b[2Jx\r"), "pod^[[2Jx\\r");
        assert_eq!(clean("plain"), "plain");
    }
}
