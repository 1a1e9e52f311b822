/**
 * Glance metadata for nova-api: the image as the caller may see it (visibility rules with the caller's
 * token context), refused unless active, and its location: what a compute host or Cinder needs to fetch
 * and verify the data without the Glance database (for an AMI, also its kernel's and ramdisk's).
 */
import { CloudError } from '../cloud/errors';
import type { Glance, Image, ImageLocation } from '../cloud/glance';
import type { RequestContext } from '../cloud/keystone';
import type { ImageSpec } from '../workflows/types';

export async function activeImageFor(
  glance: Glance,
  ref: string,
  ctx: RequestContext,
): Promise<{ image: Image; spec: ImageSpec }> {
  const image = await glance.getImage(ref, ctx);
  if (image.status !== 'active') {
    throw new CloudError('ImageNotActive', `Image ${image.id} is not active.`, { imageId: image.id });
  }
  const location = await glance.imageLocation(image);
  // An AMI boots with the kernel and ramdisk its properties name (Nova's _handle_kernel_and_ramdisk checks
  // they exist); the host fetches them with the image.
  const kernel = await partLocation(glance, image.properties.kernel_id, ctx);
  const ramdisk = await partLocation(glance, image.properties.ramdisk_id, ctx);
  return {
    image,
    spec: {
      id: image.id,
      name: image.name,
      minDisk: image.minDisk,
      minRam: image.minRam,
      properties: image.properties,
      location,
      ...(kernel ? { kernel } : {}),
      ...(ramdisk ? { ramdisk } : {}),
    },
  };
}

async function partLocation(
  glance: Glance,
  id: string | undefined,
  ctx: RequestContext,
): Promise<ImageLocation | undefined> {
  if (!id) return undefined;
  const part = await glance.getImage(id, ctx);
  if (part.status !== 'active')
    throw new CloudError('ImageNotActive', `Image ${part.id} is not active.`, { imageId: part.id });
  return glance.imageLocation(part);
}
