/**
 * Custom search attributes of the boot workflows, so a user can filter boots in the Web UI by instance,
 * project, host or state. They must be registered on the namespace before a workflow upserts them (the
 * dev server: `--search-attribute InstanceId=Keyword ...`; the time-skipping test server:
 * OperatorService.addSearchAttributes, which it supports); `BOOT_SEARCH_ATTRIBUTES` lists them for that.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const InstanceIdKey = defineSearchAttributeKey('InstanceId', SearchAttributeType.KEYWORD);
export const ProjectIdKey = defineSearchAttributeKey('ProjectId', SearchAttributeType.KEYWORD);
export const ComputeHostKey = defineSearchAttributeKey('ComputeHost', SearchAttributeType.KEYWORD);
export const VmStateKey = defineSearchAttributeKey('VmState', SearchAttributeType.KEYWORD);

/** Name → type, in the shape lib/dev-server.ts and `temporal operator search-attribute create` take. */
export const BOOT_SEARCH_ATTRIBUTES = {
  InstanceId: 'Keyword',
  ProjectId: 'Keyword',
  ComputeHost: 'Keyword',
  VmState: 'Keyword',
} as const;
