/**
 * Glance metadata for nova-api: the image as the caller may see it (visibility rules with the caller's
 * token context), refused unless active, and its location: what a compute host or Cinder needs to fetch
 * and verify the data without the Glance database.
 */
import { CloudError } from '../cloud/errors';
import type { Glance, Image } from '../cloud/glance';
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
  return {
    image,
    spec: {
      id: image.id,
      name: image.name,
      minDisk: image.minDisk,
      minRam: image.minRam,
      properties: image.properties,
      location,
    },
  };
}
