import type { LoanForgetAnswer, LoanListAnswer, LoanReturnAnswer } from "../contract";
import { withEgress } from "../egress";
import { runLoanTool } from "../loans";
import type { Call, Services } from "./context";

/** `GET /loans`: every stored loan, newest first. */
export function listLoans(services: Services): Promise<LoanListAnswer> {
  return services.loans.list(services.now());
}

/** `POST /loans/<id>/return`: gives the loan back to the library (adept_loan_mgt, through the egress proxy) and forgets it. */
export async function returnLoan(services: Services, call: Call): Promise<LoanReturnAnswer> {
  const { config, devices, loans, tools } = services;
  const { id } = call.params;
  const workDir = await call.workDir();
  return loans.return(id, {
    log: call.log,
    now: services.now(),
    requestId: call.requestId,
    workDir,
    deviceDir: () => devices.current(call.log),
    run: (args) => withEgress(tools, call.log, (toolEnv) => runLoanTool(config.toolsDir, id, args, call.timeLeftMs(), toolEnv)),
  });
}

/** `DELETE /loans/<id>`: forgets the loan without telling the library. */
export function forgetLoan(services: Services, call: Call): Promise<LoanForgetAnswer> {
  return services.loans.forget(call.params.id, services.now());
}
