"""communes: communes, their agents, families, children, adhesion codes and account-family links."""
