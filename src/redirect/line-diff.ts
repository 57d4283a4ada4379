// A minimal line diff (longest common subsequence) for `weft redirect status`: rule
// lists are a few dozen lines, so the quadratic table costs nothing.

export interface DiffLine {
  /** ' ' in both, '+' wanted but not installed, '-' installed but not wanted. */
  op: ' ' | '+' | '-';
  line: string;
}

export function diffLines(installed: readonly string[], wanted: readonly string[]): DiffLine[] {
  const n = installed.length;
  const m = wanted.length;
  // lcs[i][j]: length of the LCS of installed[i..] and wanted[j..].
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] =
        installed[i] === wanted[j]
          ? lcs[i + 1]![j + 1]! + 1
          : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && installed[i] === wanted[j]) {
      out.push({ op: ' ', line: installed[i++]! });
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push({ op: '+', line: wanted[j++]! });
    } else {
      out.push({ op: '-', line: installed[i++]! });
    }
  }
  return out;
}
