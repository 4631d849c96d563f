// Headless Chromium (Debian's `chromium`) for the tests that check a picture as a person sees it:
// a screenshot of a page, and the screenshot's pixels (PNG decoded here with node:zlib).
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";

export interface Image { width: number; height: number; /** RGBA, 4 bytes a pixel */ rgba: Uint8Array }

/** Renders an SVG document in headless Chromium and returns the screenshot, decoded. */
export async function screenshotSvg(svg: string, width: number, height: number): Promise<Image> {
  const dir = mkdtempSync(join(tmpdir(), "m46-chromium-"));
  try {
    const page = join(dir, "page.svg");
    const shot = join(dir, "shot.png");
    writeFileSync(page, svg);
    await new Promise<void>((resolve, reject) => {
      execFile("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", `--user-data-dir=${join(dir, "profile")}`,
        `--window-size=${width},${height}`, `--screenshot=${shot}`, `file://${page}`], { timeout: 60_000 }, (err, _out, stderr) => {
        if (err) reject(new Error(`chromium: ${err.message} ${stderr}`));
        else resolve();
      });
    });
    return decodePng(readFileSync(shot));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), to RGBA. */
export function decodePng(png: Uint8Array): Image {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  for (let off = 8; off < png.length;) {
    const len = view.getUint32(off);
    const type = String.fromCharCode(...png.subarray(off + 4, off + 8));
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") {
      width = view.getUint32(off + 8);
      height = view.getUint32(off + 12);
      const [depth, colour, , , interlace] = data.subarray(8, 13);
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0) throw new Error(`PNG: depth ${depth} colour type ${colour} interlace ${interlace} not handled`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === "IDAT") idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  // PNG filters (RFC 2083 §6): each row's first byte says how it is predicted from its neighbours.
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? pixels[y * stride + i - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? pixels[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const pred = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      pixels[y * stride + i] = (row[i] + pred) & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0, j = 0; i < pixels.length; i += channels, j += 4) {
    rgba[j] = pixels[i]; rgba[j + 1] = pixels[i + 1]; rgba[j + 2] = pixels[i + 2]; rgba[j + 3] = channels === 4 ? pixels[i + 3] : 255;
  }
  return { width, height, rgba };
}

/** Pixels within `tolerance` of a colour ("#rrggbb"), optionally inside a box. */
export function countColour(img: Image, hex: string, tolerance = 8, box?: { x0: number; y0: number; x1: number; y1: number }): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  const { x0 = 0, y0 = 0, x1 = img.width, y1 = img.height } = box ?? {};
  for (let y = y0; y < Math.min(y1, img.height); y++) {
    for (let x = x0; x < Math.min(x1, img.width); x++) {
      const j = (y * img.width + x) * 4;
      if (Math.abs(img.rgba[j] - r) <= tolerance && Math.abs(img.rgba[j + 1] - g) <= tolerance && Math.abs(img.rgba[j + 2] - b) <= tolerance) n++;
    }
  }
  return n;
}
