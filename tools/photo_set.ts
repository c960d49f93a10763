/**
 * A set of JPEG photos of mixed sizes for the classification pipeline's test
 * and bench, made at run time by Debian's Pillow from skimage's CC0 photos
 * (`/usr/lib/python3/dist-packages/skimage/data/`): photo `i` is colour photo
 * `i mod 10` resized (bicubic) to a long side cycling through 320, 500, 640,
 * 800, 1024, 1280, 1600 and 2048 px, every third one portrait (transposed),
 * every fifth grey, every fourth progressive, qualities 75-95, 4:2:0 or 4:4:4
 * subsampling. Nothing is committed: the photos are rebuilt the same each time.
 *
 * @module
 */

const PYTHON = "/usr/bin/python3";
const SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data/";

const SCRIPT = `
import os, sys
from PIL import Image
src, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = ["astronaut.png", "chelsea.png", "coffee.png", "ihc.png", "motorcycle_left.png",
         "rocket.jpg", "retina.jpg", "hubble_deep_field.jpg", "color.png", "horse.png"]
photos = [Image.open(os.path.join(src, n)).convert("RGB") for n in names]
sides = [320, 500, 640, 800, 1024, 1280, 1600, 2048]
for i in range(count):
    image = photos[i % len(photos)]
    side = sides[i % len(sides)]
    w, h = image.size
    size = (side, max(1, round(side * h / w))) if w >= h else (max(1, round(side * w / h)), side)
    image = image.resize(size, Image.BICUBIC)
    if i % 3 == 2:
        image = image.transpose(Image.TRANSPOSE)
    if i % 5 == 4:
        image = image.convert("L")
    path = os.path.join(out, "photo_%02d_%dx%d.jpg" % (i, image.size[0], image.size[1]))
    image.save(path, quality=75 + (i * 7) % 21, subsampling=2 if i % 2 == 0 else 0,
               progressive=i % 4 == 3)
    print(path)
`;

/**
 * Writes `count` JPEG photos into `dir` with Pillow.
 *
 * @param dir An existing folder.
 * @param count How many photos (64 by default).
 * @returns The paths in order, or why they cannot be made (no Python, Pillow or skimage photos).
 */
export async function makePhotoSet(dir: string, count = 64): Promise<string[] | string> {
  try {
    await Deno.stat(SKIMAGE);
  } catch {
    return `skimage's photos are not at ${SKIMAGE} (Debian's python3-skimage)`;
  }
  let output;
  try {
    output = await new Deno.Command(PYTHON, {
      args: ["-c", SCRIPT, SKIMAGE, dir, String(count)],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    return `cannot run ${PYTHON}: ${(error as Error).message}`;
  }
  if (output.code !== 0) {
    const lines = new TextDecoder().decode(output.stderr).trim().split("\n");
    return `${PYTHON} with Pillow failed: ${lines.at(-1)}`;
  }
  return new TextDecoder().decode(output.stdout).trim().split("\n");
}
