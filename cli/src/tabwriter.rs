//! Column alignment with the rules of Go's `text/tabwriter`, which Hubble
//! uses for every table (`-o table`, `list nodes`, ...).
//!
//! Text is a sequence of lines; a tab terminates a cell. A *column block* is
//! a run of consecutive lines that all have a tab-terminated cell in that
//! column; every cell of a block is padded to the block's widest cell plus
//! `padding` (and at least `min_width`). The last cell of a line, the text
//! after its final tab, is never padded. Widths count characters.

/// Buffers lines until [`TabWriter::render`] aligns them.
#[derive(Debug, Clone)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    lines: Vec<Vec<String>>,
    partial: String,
}

impl TabWriter {
    /// Hubble's settings: `tabwriter.NewWriter(w, 2, 0, 3, ' ', 0)`.
    pub fn hubble() -> Self {
        Self::new(2, 3)
    }

    pub fn new(min_width: usize, padding: usize) -> Self {
        Self {
            min_width,
            padding,
            lines: Vec::new(),
            partial: String::new(),
        }
    }

    /// Appends text; `\n` ends a line and `\t` ends a cell.
    pub fn write(&mut self, text: &str) {
        for (i, piece) in text.split('\n').enumerate() {
            if i > 0 {
                let line = std::mem::take(&mut self.partial);
                self.lines
                    .push(line.split('\t').map(str::to_owned).collect());
            }
            self.partial.push_str(piece);
        }
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.partial.is_empty()
    }

    /// The aligned text of everything written so far; clears the buffer.
    pub fn render(&mut self) -> String {
        let mut lines = std::mem::take(&mut self.lines);
        let partial = std::mem::take(&mut self.partial);
        let ends_with_partial = !partial.is_empty();
        if ends_with_partial {
            lines.push(partial.split('\t').map(str::to_owned).collect());
        }
        let mut out = String::new();
        let mut widths = Vec::new();
        self.format(&lines, 0, lines.len(), &mut widths, &mut out);
        if ends_with_partial && out.ends_with('\n') {
            out.pop();
        }
        out
    }

    fn format(
        &self,
        lines: &[Vec<String>],
        mut start: usize,
        end: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = start;
        while this < end {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // Lines before the block are finished at this depth.
            self.write_lines(&lines[start..this], widths, out);
            start = this;
            let mut width = self.min_width;
            while this < end && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(lines, start, this, widths, out);
            widths.pop();
            start = this;
        }
        self.write_lines(&lines[start..end], widths, out);
    }

    fn write_lines(&self, lines: &[Vec<String>], widths: &[usize], out: &mut String) {
        for line in lines {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if let Some(&w) = widths.get(j) {
                    let len = cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(len)));
                }
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_like_go() {
        let mut tw = TabWriter::hubble();
        tw.write("NAME\tSTATUS\tAGE\n");
        tw.write("foo\tConnected\t16m40s\n");
        tw.write("barbaz\tGone\tN/A\n");
        assert_eq!(
            tw.render(),
            "NAME     STATUS      AGE\nfoo      Connected   16m40s\nbarbaz   Gone        N/A\n"
        );
    }

    #[test]
    fn blocks_end_where_a_line_has_fewer_cells() {
        let mut tw = TabWriter::hubble();
        tw.write("NAMESPACE\tCLUSTER\n");
        tw.write("default\n");
        tw.write("kube-system\tc1\n");
        assert_eq!(
            tw.render(),
            "NAMESPACE   CLUSTER\ndefault\nkube-system   c1\n"
        );
    }

    #[test]
    fn empty_cells_are_padded_and_min_width_applies() {
        let mut tw = TabWriter::hubble();
        tw.write("a\t\tc\n\tb\tc\n");
        assert_eq!(tw.render(), "a       c\n    b   c\n");
    }
}
