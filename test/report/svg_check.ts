/** Checks on generated SVG text shared by the report tests. */

/**
 * A strict-enough XML check: every tag closes in order, attribute values are quoted, and text and
 * attributes hold no raw '<' or bare '&'. Returns the element names in document order.
 */
export function checkXml(svg: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const badAmp = /&(?!(amp|lt|gt|quot|apos|#\d+);)/;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < svg.length) {
    const lt = svg.indexOf('<', i);
    const text = svg.slice(i, lt === -1 ? svg.length : lt);
    if (badAmp.test(text) || text.includes('>')) throw new Error(`bad text: ${text}`);
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    if (!m) throw new Error(`malformed tag at ${lt}: ${svg.slice(lt, lt + 60)}`);
    const [whole, closing, name, attrs, selfClosing] = m;
    if (badAmp.test(attrs!)) throw new Error(`bad attribute: ${attrs}`);
    if (closing) {
      if (stack.pop() !== name) throw new Error(`unbalanced </${name}>`);
    } else {
      names.push(name!);
      if (!selfClosing) stack.push(name!);
    }
    i = lt + whole.length;
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(', ')}`);
  return names;
}

/** Point lists of every polyline. */
export function polylines(svg: string): Array<Array<[number, number]>> {
  return [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) =>
    m[1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  );
}
