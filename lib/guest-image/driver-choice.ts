/**
 * `npm start`'s choice of virt driver (scripts/demo.ts), said in one line whichever way it goes: real guests
 * (the qemu driver with the linux-bridge agent) when this machine can run them — installing the Debian
 * packages first when running as root with apt-get — otherwise the fake driver, saying why and, when
 * packages are missing, the one command that installs them. BOOTFLOW_VIRT_DRIVER=fake keeps the fake driver.
 * What it reads of the machine is given (`DriverChoiceDeps`), so each way is tested without changing it.
 */
import { GUEST_PACKAGES, INSTALL_COMMAND, type GuestImage } from './index';

export interface DriverChoiceDeps {
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  /** What is missing to build and run guests, as install hints (missingGuestTools). */
  missingTools(): Promise<string[]>;
  hasAptGet(): Promise<boolean>;
  /** `apt-get install` of the packages (an `apt-get update` and a second try inside, if need be). */
  aptInstall(packages: readonly string[]): Promise<void>;
  /** Builds (or finds cached) the guest image (ensureGuestImage). */
  buildImage(): Promise<GuestImage>;
  say(line: string): void;
}

/** The guest image when the qemu driver is chosen; undefined for the fake driver. */
export async function chooseVirtDriver(deps: DriverChoiceDeps): Promise<GuestImage | undefined> {
  const { say } = deps;
  if (deps.env.BOOTFLOW_VIRT_DRIVER === 'fake') {
    say('• virt driver: fake (BOOTFLOW_VIRT_DRIVER=fake): no guest runs');
    return undefined;
  }
  let missing = await deps.missingTools();
  if (missing.length > 0 && deps.isRoot && (await deps.hasAptGet())) {
    say(`• installing the Debian packages for real guests: ${GUEST_PACKAGES.join(' ')}`);
    await deps
      .aptInstall(GUEST_PACKAGES)
      .catch((err: unknown) => say(`  (apt-get failed: ${(err as Error).message.split('\n')[0]})`));
    missing = await deps.missingTools();
  }
  if (missing.length > 0) {
    say(`• virt driver: fake — real guests need ${missing.join(', ')}; install them with:`);
    say(`    ${deps.isRoot ? '' : 'sudo '}${INSTALL_COMMAND}`);
    return undefined;
  }
  if (!deps.isRoot) {
    say('• virt driver: fake — real guests need root (taps, bridges, network namespaces)');
    return undefined;
  }
  try {
    say('• building the guest image (Debian cloud kernel + busybox initramfs; cached)');
    const guest = await deps.buildImage();
    say(`• virt driver: qemu (software emulation), network agent: linux-bridge — guest ${guest.build}`);
    return guest;
  } catch (err) {
    say(`• virt driver: fake — the guest image could not be built: ${(err as Error).message}`);
    return undefined;
  }
}
