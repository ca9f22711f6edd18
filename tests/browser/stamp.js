// Reads framegate's capture-time stamp (src/measure/stamp.rs) from a picture: 60 black or white
// blocks along the bottom edge: 1 0 | 48 bits of Unix time in ms | CRC-8 | 0 1.
// readStamp(source, width, height) -> milliseconds since the epoch, or null.
(() => {
  const BITS = 60;
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  function crc8(ms) {
    let crc = 0;
    for (let i = 5; i >= 0; i--) {
      crc ^= Math.floor(ms / 2 ** (i * 8)) & 0xff;
      for (let b = 0; b < 8; b++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  }
  window.readStamp = (source, width, height) => {
    if (!width || !height) return null;
    const bw = Math.floor(width / BITS);
    const bh = Math.max(Math.floor(height / 24), 4);
    const top = height - bh;
    if (bw < 2) return null;
    canvas.width = width;
    canvas.height = bh;
    ctx.drawImage(source, 0, top, width, bh, 0, 0, width, bh);
    const px = ctx.getImageData(0, 0, width, bh).data;
    const bits = [];
    for (let i = 0; i < BITS; i++) {
      let sum = 0, n = 0;
      for (let y = Math.floor(bh / 4); y < Math.max(Math.floor(3 * bh / 4), Math.floor(bh / 4) + 1); y++) {
        for (let x = i * bw + Math.floor(bw / 4); x < i * bw + Math.floor(3 * bw / 4); x++) {
          const o = (y * width + x) * 4;
          sum += 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2];
          n++;
        }
      }
      const mean = sum / Math.max(n, 1);
      if (mean <= 75) bits.push(0);
      else if (mean >= 179) bits.push(1);
      else return null;
    }
    if (bits[0] !== 1 || bits[1] !== 0 || bits[58] !== 0 || bits[59] !== 1) return null;
    let ms = 0;
    for (let i = 2; i < 50; i++) ms = ms * 2 + bits[i];
    let crc = 0;
    for (let i = 50; i < 58; i++) crc = crc * 2 + bits[i];
    return crc8(ms) === crc ? ms : null;
  };
})();
